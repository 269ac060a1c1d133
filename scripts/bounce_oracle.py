#!/usr/bin/env python3
"""Produce flufl.bounce expectations for a corpus of raw messages.

Usage: oracle.py CORPUS_DIR OUT_JSON
Writes {"file.txt": {"temporary": [...], "permanent": [...]}} for every *.txt in CORPUS_DIR,
using flufl.bounce.all_failures as the oracle. Addresses are bytes in flufl; they are decoded
as ASCII (flufl already drops non-ASCII ones).
"""

import email
import json
import sys
from pathlib import Path

from flufl.bounce import all_failures


def main() -> None:
    corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
    result = {}
    for path in sorted(corpus.glob('*.txt')):
        with path.open('rb') as f:
            msg = email.message_from_binary_file(f)
        temporary, permanent = all_failures(msg)
        result[path.name] = {
            'temporary': sorted(a.decode('ascii', 'replace') for a in temporary),
            'permanent': sorted(a.decode('ascii', 'replace') for a in permanent),
        }
    out.write_text(json.dumps(result, indent=1, sort_keys=True) + '\n')


if __name__ == '__main__':
    main()
