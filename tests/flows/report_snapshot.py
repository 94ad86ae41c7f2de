"""Write the structure of the monitoring report rendered on the realistic home (report_home) to
a JSON file: `python tests/flows/report_snapshot.py tests/flows/report_structure.json`.

report_structure.json was written this way by the report as it stood before it read the dbt
models (flows/report.py at commit 4012760, which read the files itself); test_report compares
every later rendering of the same home against it.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# Run as a script too: the repository, so that `tests.flows...` imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.flows.report_home import write_realistic_home  # noqa: E402
from tests.flows.report_page import page_structure, parse_page  # noqa: E402

#: Columns whose cells differ on every run (MLflow run ids, registration times).
MASKED = ("MLflow run", "registered")
SNAPSHOT = Path(__file__).with_name("report_structure.json")
NOTE = (
    "Written by tests/flows/report_snapshot.py from the report as it stood at commit 4012760 "
    "(flows/report.py reading the files itself), on the realistic home of report_home.py."
)


def rendered_structure(page: str) -> dict[str, Any]:
    """The page's structure, with the run-dependent cells masked."""
    return page_structure(parse_page(page), masked=MASKED)


def main(out: Path) -> None:
    from flows.config import load_settings
    from flows.report import run_report

    with tempfile.TemporaryDirectory(prefix="tradewatch-report-") as scratch:
        home = Path(scratch)
        write_realistic_home(home)
        page = run_report(load_settings(environ={"TRADEWATCH_HOME": str(home)})).read_text()
    structure = {"_note": NOTE, **rendered_structure(page)}
    out.write_text(json.dumps(structure, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SNAPSHOT)
