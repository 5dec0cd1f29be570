"""AWS's public Parameter Store parameters for the latest Windows AMIs, which moto does not carry.

AWS publishes ``/aws/service/ami-windows-latest/<AMI name without its date>`` in every Region, whose value
is the ID of the newest Amazon-owned image of that name
(https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-public-parameters-ami.html).
Published runbooks use them as defaults (``AWS-CreateManagedWindowsInstance``'s AmiId is
``{{ssm:/aws/service/ami-windows-latest/Windows_Server-2016-English-Full-Base}}``). moto serves the
Amazon Linux ones but not these, so before moto answers a read of them the runtime adds the ones its own
emulated images can answer: the newest image owned by Amazon named ``<name>-YYYY.MM.DD``. A name no
emulated image matches stays absent, and the read answers ``ParameterNotFound``/``InvalidParameters``
as AWS does for an unknown name.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from moto.core.utils import utcnow
from moto.ec2.models import ec2_backends
from moto.ssm.models import Parameter, ssm_backends

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = ["WINDOWS_LATEST", "provide_public_parameters"]

WINDOWS_LATEST = "/aws/service/ami-windows-latest"
AMAZON_OWNER_IDS = frozenset(
    {"801119661308", "amazon"}
)  # the owner of AWS's Windows images, as moto lists it
_READS = frozenset({"GetParameter", "GetParameters", "GetParametersByPath"})


def provide_public_parameters(
    operation: str, params: Mapping[str, Any], account_id: str, region: str
) -> None:
    """Before moto answers ``operation``: add the public Windows AMI parameters it reads, if emulated."""
    if operation not in _READS:
        return
    wanted = _names(params)
    if not wanted:
        return
    store = ssm_backends[account_id][region]._parameters
    images = list(ec2_backends[account_id][region].amis.values())
    for name, image_id in _latest_windows_images(images).items():
        if name not in store and (
            name in wanted or any(name.startswith(w.rstrip("/") + "/") for w in wanted)
        ):
            store[name].append(_public_parameter(account_id, name, image_id))


def _names(params: Mapping[str, Any]) -> set[str]:
    """The parameter names (or the path) a read asks for, when they are under ``WINDOWS_LATEST``."""
    names: Iterable[Any] = params.get("Names") or [params.get("Name"), params.get("Path")]
    return {str(n) for n in names if isinstance(n, str) and (n + "/").startswith(WINDOWS_LATEST + "/")}


def _latest_windows_images(images: Iterable[Any]) -> dict[str, str]:
    """``{public parameter name: newest image id}`` over Amazon's images named ``<base>-YYYY.MM.DD``."""
    newest: dict[str, tuple[str, str]] = {}
    for image in images:
        found = _DATED.match(str(getattr(image, "name", "") or ""))
        if not found or str(getattr(image, "owner_id", "")) not in AMAZON_OWNER_IDS:
            continue
        name = f"{WINDOWS_LATEST}/{found.group('base')}"
        if name not in newest or found.group("date") > newest[name][0]:
            newest[name] = (found.group("date"), str(image.id))
    return {name: image_id for name, (_, image_id) in newest.items()}


def _public_parameter(account_id: str, name: str, image_id: str) -> Parameter:
    return Parameter(  # type: ignore[abstract]  # moto's CloudFormation hooks; moto builds it the same way
        account_id=account_id,
        name=name,
        value=image_id,
        parameter_type="String",
        description=None,
        allowed_pattern=None,
        keyid=None,
        last_modified_date=utcnow(),
        version=1,
        data_type="text",
    )


_DATED = re.compile(r"^(?P<base>Windows_Server-[\w.-]+?)-(?P<date>\d{4}\.\d{2}\.\d{2})$")
