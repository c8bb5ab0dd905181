#!/usr/bin/env bash
# Creates tests/interop/.venv with the interop clients (slixmpp from PyPI). Idempotent.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
if ! "$here/.venv/bin/python" -c "import slixmpp" 2>/dev/null; then
  "$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
fi
"$here/.venv/bin/python" -c "import slixmpp; print('slixmpp', slixmpp.__version__)"
