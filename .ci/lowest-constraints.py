#!/usr/bin/env python3
"""Write a pip constraints file that pins each direct dependency to its lower bound.

Reads requirements-dev.txt (and the files it includes with ``-r``), and for every requirement
with a lower bound (``>=`` or ``==``; ``~=`` counts too) prints ``name==bound``: ``X>=1.2,<2``
gives ``X==1.2``. Extras are dropped from the name (``PyJWT[crypto]>=2.8`` gives
``PyJWT==2.8``); a requirement without a lower bound is left free. CI installs the
requirements with these constraints and runs the suite, so every lower bound in the
requirements files is one the suite passes on.

Usage: .ci/lowest-constraints.py [requirements-dev.txt] > constraints-lowest.txt
"""

import re
import sys
from pathlib import Path

# name[extras] spec, spec, ... ; marker   (PEP 508 without URLs, which the project does not use)
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)")
LOWER = re.compile(r"^(>=|==|~=)\s*([^\s,*]+)$")


def lower_bounds(path: Path, seen: set[Path]) -> list[tuple[str, str]]:
    path = path.resolve()
    if path in seen:
        return []
    seen.add(path)
    pins = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith(("-r ", "--requirement ")):
            pins += lower_bounds(path.parent / line.split(None, 1)[1], seen)
            continue
        if line.startswith("-"):
            continue  # other pip options (-c, -e, --index-url ...) carry no bound
        match = REQUIREMENT.match(line)
        if not match:
            sys.exit(f"{path.name}: cannot read the requirement {raw!r}")
        name, specs = match.group(1), match.group(3)
        bounds = [m.group(2) for s in specs.split(",") if (m := LOWER.match(s.strip()))]
        if len(bounds) > 1:
            sys.exit(f"{path.name}: {name} has more than one lower bound")
        if bounds:
            pins.append((name, bounds[0]))
    return pins


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "requirements-dev.txt")
    print("# The lowest version each requirement allows; made by .ci/lowest-constraints.py.")
    for name, version in lower_bounds(root, set()):
        print(f"{name}=={version}")


if __name__ == "__main__":
    main()
