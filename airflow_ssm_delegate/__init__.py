"""Run AWS Systems Manager Automation runbooks from Airflow under delegated administration."""

__version__ = "0.1.0"
