#!/usr/bin/env bash
# Print the path of the Python interpreter NAME (e.g. python3.13), for the Makefile's virtual
# environments:
#   the command itself, when it runs;
#   else pyenv's newest installed version of that minor: pyenv's shims fail for a version that
#   is installed but not selected (`pyenv global`, `pyenv local`, PYENV_VERSION);
#   else nothing: say how to install it, and exit 1.
# usage: bash localparts/find_python.sh NAME
set -u
name=${1:?usage: find_python.sh python3.N}

if found=$("$name" -c 'import sys; print(sys.executable)' 2>/dev/null) && [ -n "$found" ]; then
    echo "$found"
    exit 0
fi

version=${name#python}
if command -v pyenv >/dev/null 2>&1 && [[ $version =~ ^[0-9]+\.[0-9]+$ ]]; then
    installed=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}(\.[0-9]+)?$" |
                sort -V | tail -n 1)
    if [ -n "$installed" ] &&
       found=$(PYENV_VERSION=$installed pyenv which "$name" 2>/dev/null) && [ -x "$found" ]; then
        echo "$found"
        exit 0
    fi
fi

echo "error: $name not found: install Python $version (Debian 12 has 3.11, Ubuntu 24.04 3.12," \
     "Debian 13 3.13: apt-get install $name $name-venv; or pyenv install $version)," \
     "or name another with PYTHON=python3.N (3.11 to 3.13)" >&2
exit 1
