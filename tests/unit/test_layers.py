import subprocess
import sys
from pathlib import Path


def test_imports_point_one_way() -> None:
    """import-linter's layers contract (pyproject.toml): downstream stages never import upstream ones."""
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert done.returncode == 0, done.stdout + done.stderr
