"""Shared command line of the derivation scripts: print the steps, write a Markdown page."""

import argparse
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent


def publish(name: str, title: str, sections: list[tuple[str, object]], intro: str = "") -> pathlib.Path:
    """Print every section's derivation and write ``docs/derivations/<name>.md`` (or ``--out``)."""
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--out", type=pathlib.Path, default=ROOT / "docs" / "derivations",
                        help="folder for the Markdown page (default docs/derivations)")
    args = parser.parse_args()
    pages = [f"# {title}", "", intro.strip(), ""]
    for heading, eqs in sections:
        print(f"== {heading}\n{eqs.describe_steps()}\n\n{eqs}\n")
        body = eqs.to_markdown(heading).replace("\n## ", "\n### ").replace("# " + heading, "## " + heading, 1)
        pages.append(body)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{name}.md"
    path.write_text("\n".join(pages))
    print(f"wrote {path}")
    return path
