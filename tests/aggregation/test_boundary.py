"""crowd/aggregation knows arrays, never models: importing it must not pull in Django or pandas."""

import subprocess
import sys
from pathlib import Path


def test_importing_the_package_loads_neither_django_nor_pandas():
    code = (
        "import sys, crowd.aggregation; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'pandas', 'crowdkit'}))"
    )

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)

    assert out.stdout.strip() == "[]"
