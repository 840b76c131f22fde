"""Files from Debian packages, fetched with ``apt-get download`` and unpacked under
``build/tech``: nothing is installed, so no root is needed and the machine stays as it was."""

from __future__ import annotations

import subprocess
from pathlib import Path

from testbench import BUILD

TECH = BUILD / "tech"

__all__ = ["TECH", "unpack"]


def unpack(package: str, member: str) -> Path:
    """The path of ``member`` (a path inside ``package``), downloaded on first use."""
    path = TECH / "x" / member
    if path.exists():
        return path
    TECH.mkdir(parents=True, exist_ok=True)
    debs = list(TECH.glob(f"{package}_*.deb"))
    if not debs:
        proc = subprocess.run(["apt-get", "download", package], cwd=TECH,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            proc = subprocess.run(["apt-get", "download", package], cwd=TECH,
                                  capture_output=True, text=True)
        debs = list(TECH.glob(f"{package}_*.deb"))
        if not debs:
            raise SystemExit(f"cannot fetch {member} (apt-get download {package}): "
                             f"{proc.stderr.strip()}")
    subprocess.run(["dpkg", "-x", str(debs[0]), str(TECH / "x")], check=True)
    if not path.exists():
        raise SystemExit(f"Debian package {package} holds no {member}")
    return path
