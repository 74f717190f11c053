"""The quality benchmark (``embedloop.benchmarks.quality``) as a script; same as ``embedloop bench quality``.

python bench/feedback_quality.py --dataset nfcorpus --out bench-results/nfcorpus
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
SRC = Path(__file__).resolve().parent.parent / "src"
if SRC.is_dir() and str(SRC) not in sys.path:
    sys.path.insert(0, str(SRC))

from embedloop.benchmarks.quality import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
