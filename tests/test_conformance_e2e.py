"""Published runbooks run end to end on the local runtime, their effect checked on the emulated resources.

Each test publishes one corpus runbook under its published name (CreateDocument), starts it through
boto3 under a service role, waits for the end and asserts ``Success`` plus what the runbook is for: the
instance stopped, the image gone, the bucket key on. AWS's own runbooks come from awslabs/
aws-systems-manager (the AWS-* documents), from ceshihao/ssm-public-documents (a dump of what GetDocument
returns for AWS's public documents today: the runnable AWS-ResizeInstance and the EBS snapshot ones) and
from the Automated Security Response solution, which redistributes AWS's AWSConfigRemediation-* documents;
the executeScript and loop runbooks are community and aws-samples runbooks. Without the corpus the tests
skip (see tests/corpus_support.py).
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import TYPE_CHECKING, Any

import pytest

from tests.corpus_runtime import all_actions_role, publish
from tests.corpus_support import CorpusEntry, api_form, load_manifest, runbook_text
from tests.fixtures.local_runtime import client_for, policy_document, unique

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_ssm_delegate.local.server import LocalAutomationServer

ENTRIES = {entry.document_name: entry for entry in load_manifest()}
AMI = "ami-04681a1dbd79675a5"  # one of moto's stock images
OTHER_ACCOUNT = "111122223333"


class Runner:
    """Publishes a corpus runbook on the local runtime and runs it as the admin under a service role."""

    def __init__(self, server: LocalAutomationServer, role_arn: str) -> None:
        self.server = server
        self.role_arn = role_arn
        self.ssm = client_for(server, "ssm")
        self.ec2 = client_for(server, "ec2")

    def start(
        self, name: str, parameters: dict[str, Any], role_parameter: str = "AutomationAssumeRole"
    ) -> str:
        entry: CorpusEntry = ENTRIES[name]
        text = runbook_text(entry)
        publish(self.ssm, entry, text)
        api = {key: api_form(value) for key, value in parameters.items()}
        api[role_parameter] = [self.role_arn]
        return str(
            self.ssm.start_automation_execution(DocumentName=name, Parameters=api)["AutomationExecutionId"]
        )

    def finish(self, execution_id: str) -> dict[str, Any]:
        assert self.server.engine is not None
        self.server.engine.wait(execution_id, timeout=120)
        execution: dict[str, Any] = self.ssm.get_automation_execution(AutomationExecutionId=execution_id)[
            "AutomationExecution"
        ]
        return execution

    def run(self, name: str, parameters: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Start, wait for the end, and require ``Success`` (the failure message says why not)."""
        execution = self.finish(self.start(name, parameters, **kwargs))
        assert execution["AutomationExecutionStatus"] == "Success", (
            execution["AutomationExecutionStatus"],
            execution.get("FailureMessage"),
            [(s["StepName"], s["StepStatus"], s.get("FailureMessage")) for s in execution["StepExecutions"]],
        )
        return execution

    def wait_until_waiting(self, execution_id: str, timeout: float = 60.0) -> dict[str, Any]:
        """Poll GetAutomationExecution until the execution waits (for an approval)."""
        deadline = time.monotonic() + timeout
        while True:
            execution = self.ssm.get_automation_execution(AutomationExecutionId=execution_id)[
                "AutomationExecution"
            ]
            status = execution["AutomationExecutionStatus"]
            assert status in ("Pending", "InProgress", "Waiting"), execution
            if status == "Waiting":
                return dict(execution)
            assert time.monotonic() < deadline, f"never waited for approval: {execution}"
            time.sleep(0.05)

    def instance(self, state: str = "running", tags: dict[str, str] | None = None) -> str:
        spec: dict[str, Any] = {"ImageId": AMI, "MinCount": 1, "MaxCount": 1}
        spec["Placement"] = {"AvailabilityZone": "us-east-1a"}
        if tags:
            spec["TagSpecifications"] = [
                {"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            ]
        instance_id = str(self.ec2.run_instances(**spec)["Instances"][0]["InstanceId"])
        if state == "stopped":
            self.ec2.stop_instances(InstanceIds=[instance_id])
        return instance_id

    def state_of(self, instance_id: str) -> str:
        reservations = self.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
        return str(reservations[0]["Instances"][0]["State"]["Name"])


@pytest.fixture
def runner(request: pytest.FixtureRequest) -> Runner:
    """Skips without a corpus before the runtime is started; else a Runner with an all-actions role."""
    runbook_text(next(iter(ENTRIES.values())))
    server: LocalAutomationServer = request.getfixturevalue("local_server")
    return Runner(server, request.getfixturevalue("e2e_role"))


@pytest.fixture(scope="module")
def e2e_role(local_server: LocalAutomationServer) -> str:
    return all_actions_role(local_server, "CorpusE2ERole")


def step_outputs(execution: dict[str, Any], step: str) -> dict[str, list[str]]:
    for step_execution in execution["StepExecutions"]:
        if step_execution["StepName"] == step:
            return dict(step_execution.get("Outputs", {}))
    raise AssertionError(f"no step {step} in {[s['StepName'] for s in execution['StepExecutions']]}")


# ---------------------------------------------------------------------------- instance lifecycle


def test_aws_stop_ec2_instance_stops_it(runner: Runner) -> None:
    instance_id = runner.instance()
    runner.run("AWS-StopEC2Instance", {"InstanceId": [instance_id]})
    assert runner.state_of(instance_id) == "stopped"


def test_aws_start_ec2_instance_starts_it(runner: Runner) -> None:
    instance_id = runner.instance(state="stopped")
    runner.run("AWS-StartEC2Instance", {"InstanceId": [instance_id]})
    assert runner.state_of(instance_id) == "running"


def test_aws_restart_ec2_instance_stops_then_starts_it(runner: Runner) -> None:
    instance_id = runner.instance()
    execution = runner.run("AWS-RestartEC2Instance", {"InstanceId": [instance_id]})
    steps = [(s["StepName"], s["StepStatus"]) for s in execution["StepExecutions"]]
    assert steps == [("stopInstances", "Success"), ("startInstances", "Success")]
    assert runner.state_of(instance_id) == "running"


def test_aws_terminate_ec2_instance_terminates_it(runner: Runner) -> None:
    instance_id = runner.instance()
    runner.run("AWS-TerminateEC2Instance", {"InstanceId": [instance_id]})
    assert runner.state_of(instance_id) == "terminated"


def test_aws_stop_ec2_instance_with_approval_waits_for_the_approver(runner: Runner) -> None:
    instance_id = runner.instance()
    approver = client_for(runner.server, "sts").get_caller_identity()["Arn"]
    topic = client_for(runner.server, "sns").create_topic(Name=unique("Automation-approvals"))["TopicArn"]
    execution_id = runner.start(
        "AWS-StopEC2InstanceWithApproval",
        {"InstanceId": [instance_id], "Approvers": [approver], "SNSTopicArn": topic},
    )
    runner.wait_until_waiting(execution_id)
    assert runner.state_of(instance_id) == "running"  # nothing happens before the approval
    runner.ssm.send_automation_signal(
        AutomationExecutionId=execution_id, SignalType="Approve", Payload={"Comment": ["corpus e2e"]}
    )
    execution = runner.finish(execution_id)
    assert execution["AutomationExecutionStatus"] == "Success", execution.get("FailureMessage")
    assert runner.state_of(instance_id) == "stopped"


# ----------------------------------------------------------------------------------------- images


def test_aws_create_image_creates_an_available_image(runner: Runner) -> None:
    instance_id = runner.instance()
    execution = runner.run("AWS-CreateImage", {"InstanceId": instance_id})
    image_id = step_outputs(execution, "createImage")["ImageId"][0]
    image = runner.ec2.describe_images(ImageIds=[image_id])["Images"][0]
    assert image["Name"] == f"{instance_id}_{execution['AutomationExecutionId']}"
    assert image["State"] == "available"


def test_aws_delete_image_deregisters_it(runner: Runner) -> None:
    image_id = runner.ec2.create_image(InstanceId=runner.instance(), Name=unique("corpus-delete"))["ImageId"]
    runner.run("AWS-DeleteImage", {"ImageId": image_id})
    assert runner.ec2.describe_images(Filters=[{"Name": "image-id", "Values": [image_id]}])["Images"] == []


# ----------------------------------------------------------------------------------------- resize


def test_aws_resize_instance_stops_it_changes_the_type_and_starts_it(runner: Runner) -> None:
    # The first step is a non-critical assertion whose failure jumps to stopInstance: the execution still
    # ends in Success (isCritical false), with that step shown Failed.
    instance_id = runner.instance()
    execution = runner.run("AWS-ResizeInstance", {"InstanceId": instance_id, "InstanceType": "t3.large"})
    steps = [(s["StepName"], s["StepStatus"]) for s in execution["StepExecutions"]]
    assert steps == [
        ("assertInstanceType", "Failed"),
        ("stopInstance", "Success"),
        ("resizeInstance", "Success"),
        ("wait", "Success"),
        ("startInstance", "Success"),
    ]
    instance = runner.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    assert instance["InstanceType"] == "t3.large"
    assert instance["State"]["Name"] == "running"


def test_aws_resize_instance_already_of_that_type_ends_at_the_assertion(runner: Runner) -> None:
    instance_id = runner.instance()
    described = runner.ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    execution = runner.run(
        "AWS-ResizeInstance", {"InstanceId": instance_id, "InstanceType": described["InstanceType"]}
    )
    steps = [(s["StepName"], s["StepStatus"]) for s in execution["StepExecutions"]]
    assert steps == [("assertInstanceType", "Success")]  # isEnd: never stopped
    assert runner.state_of(instance_id) == "running"


# ------------------------------------------------------------------------------------ EBS snapshots


def volume(runner: Runner) -> str:
    return str(runner.ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"])


def test_aws_create_snapshot_creates_a_completed_snapshot_of_the_volume(runner: Runner) -> None:
    volume_id = volume(runner)
    execution = runner.run("AWS-CreateSnapshot", {"VolumeId": volume_id, "Description": "corpus e2e"})
    [snapshot_id] = step_outputs(execution, "createSnapshot")["Payload"]
    assert execution["Outputs"]["createSnapshot.Payload"] == [snapshot_id]
    snapshot = runner.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
    assert (snapshot["VolumeId"], snapshot["State"]) == (volume_id, "completed")
    assert snapshot["Description"] == "corpus e2e"


def test_aws_delete_snapshot_deletes_it(runner: Runner) -> None:
    snapshot_id = runner.ec2.create_snapshot(VolumeId=volume(runner))["SnapshotId"]
    runner.run("AWS-DeleteSnapshot", {"SnapshotId": snapshot_id})
    found = runner.ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])
    assert found["Snapshots"] == []


def test_aws_copy_snapshot_copies_it_through_its_stack_and_function(runner: Runner) -> None:
    # createStack (a Lambda function and its role from an inline template), invoke it, delete the stack.
    volume_id = volume(runner)
    source = runner.ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    execution = runner.run(
        "AWS-CopySnapshot", {"SnapshotId": source, "SourceRegion": "us-east-1", "Description": "corpus copy"}
    )
    [payload] = execution["Outputs"]["copySnapshot.Payload"]
    copy_id = json.loads(payload)["SnapshotId"]
    assert copy_id != source
    copy = runner.ec2.describe_snapshots(SnapshotIds=[copy_id])["Snapshots"][0]
    assert copy["Description"] == "corpus copy"
    # A deleted stack is described by id only, not by name: find it among the deleted ones.
    stack_name = f"CopySnapshotStack{execution['AutomationExecutionId']}"
    cloudformation = client_for(runner.server, "cloudformation")
    deleted = cloudformation.list_stacks(StackStatusFilter=["DELETE_COMPLETE"])["StackSummaries"]
    assert stack_name in [stack["StackName"] for stack in deleted]


# ------------------------------------------------------- AWS-specific parameter types / Config rules


def test_aws_enable_s3_bucket_keys_with_aws_specific_parameter_types(runner: Runner) -> None:
    # AutomationAssumeRole is AWS::IAM::Role::Arn and BucketName AWS::S3::Bucket::Name in this runbook.
    s3 = client_for(runner.server, "s3")
    bucket = unique("corpus-bucket-keys").lower()
    s3.create_bucket(Bucket=bucket)
    runner.run("AWS-EnableS3BucketKeys", {"BucketName": bucket})
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["BucketKeyEnabled"] is True
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"


def test_config_remediation_configure_s3_bucket_public_access_block_by_api_then_script(
    runner: Runner,
) -> None:
    # Boolean parameters with allowedValues, passed typed into an API call and a script's payload.
    s3 = client_for(runner.server, "s3")
    bucket = unique("corpus-pab").lower()
    s3.create_bucket(Bucket=bucket)
    execution = runner.run(
        "AWSConfigRemediation-ConfigureS3BucketPublicAccessBlock",
        {"BucketName": bucket, "BlockPublicPolicy": False},
    )
    configuration = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert configuration == {
        "BlockPublicAcls": True,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": True,
    }
    assert "successfully set" in step_outputs(execution, "GetBucketPublicAccessBlock")["Output"][0]


def test_config_remediation_enable_key_rotation_turns_rotation_on(runner: Runner) -> None:
    kms = client_for(runner.server, "kms")
    key_id = kms.create_key(Description="corpus e2e")["KeyMetadata"]["KeyId"]
    runner.run("AWSConfigRemediation-EnableKeyRotation", {"KeyId": key_id})
    assert kms.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is True


@pytest.fixture
def ebs_default_encryption_restored(runner: Runner) -> Iterator[None]:
    """EBS encryption by default is account-wide: put it back for the rest of the session."""
    before = runner.ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"]
    yield
    if not before:
        runner.ec2.disable_ebs_encryption_by_default()


@pytest.mark.usefixtures("ebs_default_encryption_restored")
def test_config_remediation_enable_ebs_encryption_by_default(runner: Runner) -> None:
    runner.run("AWSConfigRemediation-EnableEbsEncryptionByDefault", {})
    assert runner.ec2.get_ebs_encryption_by_default()["EbsEncryptionByDefault"] is True


def test_config_remediation_enable_cloudtrail_log_file_validation(runner: Runner) -> None:
    bucket = unique("corpus-trail").lower()
    client_for(runner.server, "s3").create_bucket(Bucket=bucket)
    cloudtrail = client_for(runner.server, "cloudtrail")
    trail = cloudtrail.create_trail(Name=unique("corpus-trail"), S3BucketName=bucket)["Name"]
    runner.run("AWSConfigRemediation-EnableCloudTrailLogFileValidation", {"TrailName": trail})
    assert cloudtrail.get_trail(Name=trail)["Trail"]["LogFileValidationEnabled"] is True


def test_config_remediation_enable_rds_cluster_deletion_protection(runner: Runner) -> None:
    rds = client_for(runner.server, "rds")
    cluster = rds.create_db_cluster(
        DBClusterIdentifier=unique("corpus-cluster"),
        Engine="aurora-postgresql",
        MasterUsername="corpus",
        MasterUserPassword="corpus-password-1",
    )["DBCluster"]
    runner.run(
        "AWSConfigRemediation-EnableRDSClusterDeletionProtection", {"RDSClusterARN": cluster["DBClusterArn"]}
    )
    described = rds.describe_db_clusters(DBClusterIdentifier=cluster["DBClusterIdentifier"])["DBClusters"][0]
    assert described["DeletionProtection"] is True


@pytest.fixture
def no_password_policy_afterwards(runner: Runner) -> Iterator[None]:
    """The IAM password policy is account-wide: remove it for the rest of the session."""
    yield
    client_for(runner.server, "iam").delete_account_password_policy()


@pytest.mark.usefixtures("no_password_policy_afterwards")
def test_config_remediation_set_iam_password_policy_with_integer_patterns(runner: Runner) -> None:
    # Integer parameters carrying allowedPattern, Booleans, all passed through a script's payload.
    runner.run(
        "AWSConfigRemediation-SetIAMPasswordPolicy",
        {
            "MinimumPasswordLength": 14,
            "MaxPasswordAge": 90,
            "RequireSymbols": True,
            "PasswordReusePrevention": 24,
        },
    )
    policy = client_for(runner.server, "iam").get_account_password_policy()["PasswordPolicy"]
    assert policy["MinimumPasswordLength"] == 14
    assert policy["MaxPasswordAge"] == 90
    assert policy["PasswordReusePrevention"] == 24
    assert policy["RequireSymbols"] is True
    assert policy["RequireNumbers"] is False


def test_asr_encrypt_rds_snapshot_creates_the_encrypted_copy_and_drops_the_source(runner: Runner) -> None:
    # An RDS snapshot, copied encrypted (the EBS ones are AWS-CreateSnapshot / AWS-CopySnapshot above).
    rds = client_for(runner.server, "rds")
    instance = unique("corpus-db")
    rds.create_db_instance(
        DBInstanceIdentifier=instance,
        DBInstanceClass="db.t3.micro",
        Engine="postgres",
        MasterUsername="corpus",
        MasterUserPassword="corpus-password-1",
        AllocatedStorage=20,
    )
    source, target = unique("corpus-plain"), unique("corpus-encrypted")
    rds.create_db_snapshot(DBInstanceIdentifier=instance, DBSnapshotIdentifier=source)
    execution = runner.run(
        "ASR-EncryptRDSSnapshot",
        {
            "SourceDBSnapshotIdentifier": source,
            "TargetDBSnapshotIdentifier": target,
            "DBSnapshotType": "snapshot",
        },
    )
    assert step_outputs(execution, "CopyRdsSnapshotToEncryptedRdsSnapshot")["EncryptedSnapshotId"] == [target]
    copy = rds.describe_db_snapshots(DBSnapshotIdentifier=target)["DBSnapshots"][0]
    assert copy["Status"] == "available" and copy["Encrypted"] is True
    remaining = rds.describe_db_snapshots(DBInstanceIdentifier=instance)["DBSnapshots"]
    assert source not in [snapshot["DBSnapshotIdentifier"] for snapshot in remaining]


# ------------------------------------------------------------------------------- CloudFormation


def test_aws_delete_cloudformation_stack_deletes_it(runner: Runner) -> None:
    cloudformation = client_for(runner.server, "cloudformation")
    template = '{"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}'
    stack_id = cloudformation.create_stack(StackName=unique("corpus-stack"), TemplateBody=template)["StackId"]
    runner.run("AWS-DeleteCloudFormationStack", {"StackNameOrId": stack_id})
    stack = cloudformation.describe_stacks(StackName=stack_id)["Stacks"][0]
    assert stack["StackStatus"] == "DELETE_COMPLETE"


def test_deploy_nginx_creates_the_stack_then_runs_commands_on_its_instance(runner: Runner) -> None:
    execution = runner.run("systems-manager-cloudformation-samples-deploynginxautomationdoc", {})
    stack_name = f"EC2Linux-{execution['AutomationExecutionId']}"
    stack = client_for(runner.server, "cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    [instance_id] = step_outputs(execution, "getInstanceId")["InstanceId"]
    assert runner.state_of(instance_id) == "running"
    commands = [c for c in runner.ssm.list_commands()["Commands"] if instance_id in c["InstanceIds"]]
    assert [c["DocumentName"] for c in commands] == ["AWS-RunShellScript", "AWS-RunShellScript"]


# --------------------------------------------------------------------------- aws:executeScript


def test_chaos_terminate_random_instance_picks_the_tagged_one_by_script(runner: Runner) -> None:
    tag = unique("chaos")
    instance_id = runner.instance(tags={"ChaosTarget": tag})
    execution = runner.run(
        "chaos-ssm-documents-terminate-random-instance-api",
        {"AvailabilityZone": "us-east-1a", "TagName": "ChaosTarget", "TagValue": tag},
    )
    assert step_outputs(execution, "SelectRandomInstance")["InstanceId"] == [instance_id]
    assert runner.state_of(instance_id) == "terminated"


def test_create_and_tag_resources_script_creates_a_tagged_bucket_with_boto3(runner: Runner) -> None:
    bucket = unique("corpus-tagged").lower()
    execution = runner.run(
        "ssm-automation-scripts-create_and_tag_resources",
        {
            "ResourceType": "S3",
            "ResourceName": bucket,
            "ResourceParameters": {"Region": "us-east-1"},
            "Environment": "Development",
            "Department": "Platform",
            "Project": "conformance",
            "Owner": "ops@example.com",
            "CostCenter": "CC-1",
        },
    )
    assert step_outputs(execution, "CreateResource")["ResourceId"] == [bucket]
    tags = client_for(runner.server, "s3").get_bucket_tagging(Bucket=bucket)["TagSet"]
    assert {"Key": "Environment", "Value": "Development"} in tags
    assert {"Key": "CreatedBy", "Value": "SSM-Automation"} in tags


def test_chaos_detach_ebs_detaches_the_tagged_volume_and_tags_it(runner: Runner) -> None:
    tag = unique("chaos-ebs")
    instance_id = runner.instance()
    volume_id = runner.ec2.create_volume(
        AvailabilityZone="us-east-1a",
        Size=8,
        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "ChaosTarget", "Value": tag}]}],
    )["VolumeId"]
    runner.ec2.attach_volume(VolumeId=volume_id, InstanceId=instance_id, Device="/dev/sdf")
    execution = runner.run(
        "chaos-ssm-documents-detach-ebs-api-2",
        {"VolumeId": volume_id, "TagName": "ChaosTarget", "TagValue": tag},
    )
    assert step_outputs(execution, "describeVolume")["InstanceId"] == [instance_id]
    volume = runner.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
    assert volume["State"] == "available" and not volume.get("Attachments")
    # Value: Detachedfrom"{{ describeVolume.InstanceId }}"ofType{{ describeVolume.DeviceType }} is one
    # plain YAML scalar: the quotes are part of the text.
    assert {"Key": "chaosAction", "Value": f'Detachedfrom"{instance_id}"ofType/dev/sdf'} in volume["Tags"]


# ------------------------------------------------------------------------ aws:invokeLambdaFunction

# Our own function for the chaos runbook's contract (Payload: tagValue, availabilityZone): stop one
# running instance in that zone carrying that tag value.
STOP_ONE_HANDLER = """
import boto3

def handler(event, context):
    ec2 = boto3.client("ec2")
    filters = [
        {"Name": "availability-zone", "Values": [event["availabilityZone"]]},
        {"Name": "instance-state-name", "Values": ["running"]},
        {"Name": "tag-value", "Values": [event["tagValue"]]},
    ]
    reservations = ec2.describe_instances(Filters=filters)["Reservations"]
    found = [i["InstanceId"] for r in reservations for i in r["Instances"]]
    ec2.stop_instances(InstanceIds=found[:1])
    return {"Stopped": found[:1]}
"""


def zipped(name: str, text: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


def test_chaos_stop_random_instance_lambda_invokes_the_function(runner: Runner) -> None:
    iam = client_for(runner.server, "iam")
    role = unique("corpus-fn-role")
    trust = {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=policy_document([trust]))["Role"]["Arn"]
    iam.put_role_policy(
        RoleName=role,
        PolicyName="ec2",
        PolicyDocument=policy_document(
            [{"Effect": "Allow", "Action": ["ec2:DescribeInstances", "ec2:StopInstances"], "Resource": "*"}]
        ),
    )
    function = unique("StopRandomInstance")
    client_for(runner.server, "lambda").create_function(
        FunctionName=function,
        Runtime="python3.11",
        Role=arn,
        Handler="index.handler",
        Code={"ZipFile": zipped("index.py", STOP_ONE_HANDLER)},
        Timeout=30,
    )
    tag = unique("chaos-lambda")
    instance_id = runner.instance(tags={"ChaosTarget": tag})
    execution = runner.run(
        "chaos-ssm-documents-stop-random-instance-lambda",
        {"AvailabilityZone": "us-east-1a", "TagValue": tag, "FunctionName": function},
    )
    assert json.loads(step_outputs(execution, "invokeStopRandomInstances")["Payload"][0]) == {
        "Stopped": [instance_id]
    }
    assert runner.state_of(instance_id) == "stopped"


# ------------------------------------------------------------------------------------- aws:loop


def test_distribute_ami_shares_each_snapshot_in_a_loop(runner: Runner) -> None:
    instance_id = runner.instance()
    execution = runner.run(
        "systems-manager-distribute-ami-distributeami",
        {
            "InstanceId": instance_id,
            "TargetAccountId": OTHER_ACCOUNT,
            "CopyAMIAnotherAccount": False,
            "TerminateOriginalInstance": True,
        },
        role_parameter="SSMRole",
    )
    image_id = step_outputs(execution, "CreateAMI")["ImageId"][0]
    permissions = runner.ec2.describe_image_attribute(ImageId=image_id, Attribute="launchPermission")
    assert {"UserId": OTHER_ACCOUNT} in permissions["LaunchPermissions"]
    snapshots = step_outputs(execution, "GetAMISnapshots")["Snapshots"]
    assert snapshots
    for snapshot_id in snapshots:
        shared = runner.ec2.describe_snapshot_attribute(
            SnapshotId=snapshot_id, Attribute="createVolumePermission"
        )
        assert {"UserId": OTHER_ACCOUNT} in shared["CreateVolumePermissions"]
    assert runner.state_of(instance_id) == "terminated"
