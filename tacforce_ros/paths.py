"""Where the installed (or checked-out) package keeps its models, configs and launch files."""
from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "tacforce"
SOURCE_ROOT = Path(__file__).resolve().parent.parent


def share_dir() -> Path:
    """Return the package's share directory: ament index, then the pip prefix, then the checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            return Path(get_package_share_directory(PACKAGE))
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH unset (no ROS sourced)
            pass
    except ImportError:
        pass
    prefix_share = Path(sys.prefix) / "share" / PACKAGE
    if (prefix_share / "models").is_dir():
        return prefix_share
    return SOURCE_ROOT


def resolve(kind: str, name: str) -> Path:
    """Find a file of ``kind`` (e.g. ``models``) by name: an absolute or relative path is kept as
    it is; a bare file name is looked up in the package's ``kind`` folder.
    """
    path = Path(name).expanduser()
    if path.is_absolute() or path.parent != Path("."):
        return path
    installed = share_dir() / kind / name
    return installed if installed.exists() else SOURCE_ROOT / kind / name


def node_parameters(path: str | Path, node_name: str) -> dict:
    """Return the ``ros__parameters`` of one node in a ROS parameter file (yaml.safe_load only),
    under ``/**/node_name`` (any namespace, as the shipped files write it) or ``node_name``.
    """
    import yaml
    with open(path, encoding="utf-8") as stream:
        doc = yaml.safe_load(stream) or {}
    section = doc.get(f"/**/{node_name}", doc.get(node_name, {})) if isinstance(doc, dict) else None
    params = section.get("ros__parameters") if isinstance(section, dict) else None
    if not isinstance(params, dict):
        raise ValueError(f"{path}: no {node_name}.ros__parameters section")
    return params
