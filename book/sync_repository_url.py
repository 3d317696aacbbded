"""Copy the repository URL from book/_config.yml into every chapter's Colab install cell.

The URL is set in one place, book/_config.yml. Colab opens a notebook on its own, so each
chapter's first cell must also name the repository to install the helpers from; run
`make sync-url` after changing the URL (tests/test_notebooks_meta.py checks they agree).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
INSTALL = re.compile(r"(git\+)(\S+?)([\"'\s])")


def main() -> None:
    config = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())
    url = config["repository"]["url"]
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        notebook = json.loads(path.read_text())
        changed = False
        for cell in notebook["cells"]:
            source = "".join(cell["source"])
            if cell["cell_type"] == "code" and "pip install" in source:
                updated = INSTALL.sub(lambda m: m.group(1) + url + m.group(3), source)
                if updated != source:
                    cell["source"] = updated.splitlines(keepends=True)
                    changed = True
        if changed:
            path.write_text(json.dumps(notebook, indent=1, ensure_ascii=False) + "\n")
        print(f"{path.name}: {'updated' if changed else 'already'} {url}")


if __name__ == "__main__":
    main()
