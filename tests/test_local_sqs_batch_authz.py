"""SQS batch calls are authorised as AWS does: by the single action's permission.

"You cannot set permissions explicitly for SendMessageBatch, DeleteMessageBatch, or
ChangeMessageVisibilityBatch" (SQS Developer Guide, Amazon SQS batch actions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.fixtures.local_runtime import error_of, unique

if TYPE_CHECKING:
    from collections.abc import Callable


def test_batch_calls_need_the_single_actions_permission(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    sqs = boto_client("sqs")
    queue = sqs.create_queue(QueueName=unique("batch"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    single = ["sqs:SendMessage", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"]
    user = boto_client("sqs", new_user([{"Effect": "Allow", "Action": single, "Resource": queue_arn}]))
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(3)]
    assert len(user.send_message_batch(QueueUrl=queue, Entries=entries)["Successful"]) == 3
    received: list[dict[str, Any]] = []
    while len(received) < 3:
        received += user.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)]
    changed = user.change_message_visibility_batch(
        QueueUrl=queue, Entries=[{**h, "VisibilityTimeout": 0} for h in handles]
    )
    assert len(changed["Successful"]) == 3
    received = []
    while len(received) < 3:
        received += user.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    deleted = user.delete_message_batch(
        QueueUrl=queue,
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)],
    )
    assert len(deleted["Successful"]) == 3


def test_without_the_single_action_the_batch_call_is_denied(
    boto_client: Callable[..., Any], new_user: Callable[..., dict[str, str]]
) -> None:
    sqs = boto_client("sqs")
    queue = sqs.create_queue(QueueName=unique("batch"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    user = boto_client(
        "sqs", new_user([{"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": queue_arn}])
    )
    error = error_of(
        lambda: user.send_message_batch(QueueUrl=queue, Entries=[{"Id": "1", "MessageBody": "m"}])
    )
    assert error["Code"].startswith("AccessDenied"), error
    assert "not authorized to perform: sqs:SendMessage on resource" in error["Message"], error
