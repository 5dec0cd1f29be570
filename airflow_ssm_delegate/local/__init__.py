"""The local Automation runtime: moto's AWS services plus SSM Automation executions, with IAM enforced.

Entry points: ``local.server.LocalAutomationServer`` (in-process) and the ``ssm-delegate-local`` console
(``local.cli``). Kept import-light on purpose: the engine's modules import ``local.identity`` without
pulling in moto's server.
"""
