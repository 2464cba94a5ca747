"""Write the model card of every model in ``weights_manifest.json`` to ``docs/model-cards/NAME.md``.

    python scripts/model_cards.py            # after the manifest changes (a promotion, new metrics)
    python scripts/model_cards.py --check    # exit 1 when a card differs from what the manifest gives

Each card is exactly what ``hfpie hub-export NAME FOLDER`` writes as the folder's README.md
(:func:`hfpie.export.manifest_model_card`): training folders with provenance and licences, the stages,
metrics and speeds, all from the manifest. Cards of models no longer in the manifest are removed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hfpie.export import manifest_model_card
from hfpie.hub import load_manifest

__all__ = ["CARDS", "expected_cards"]

CARDS = Path(__file__).resolve().parents[1] / "docs" / "model-cards"


def expected_cards() -> dict[str, str]:
    """File name -> card text for every model of the manifest."""
    return {f"{name}.md": manifest_model_card(name) for name in sorted(load_manifest())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare only; write nothing")
    args = parser.parse_args()
    cards = expected_cards()
    present = {path.name: path.read_text() for path in CARDS.glob("*.md")} if CARDS.is_dir() else {}
    stale = sorted(name for name in set(cards) | set(present) if cards.get(name) != present.get(name))
    if args.check:
        if stale:
            sys.exit(f"model cards out of date: {', '.join(stale)}; run python scripts/model_cards.py")
        print(f"{len(cards)} model cards up to date")
        return
    CARDS.mkdir(parents=True, exist_ok=True)
    for name in stale:
        if name in cards:
            (CARDS / name).write_text(cards[name])
        else:
            (CARDS / name).unlink()
    print(f"wrote {len([n for n in stale if n in cards])} of {len(cards)} model cards to {CARDS}"
          + (f", removed {len([n for n in stale if n not in cards])}" if any(n not in cards for n in stale) else ""))


if __name__ == "__main__":
    main()
