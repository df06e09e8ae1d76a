"""Stand-in for pip's get-pip.py bootstrap script, for `ansible-test sanity --venv`.

ansible-test bootstraps pip into each sanity virtualenv with a get-pip.py that it downloads from
its own CI file host, which this project's machines cannot reach (only package registries are).
ansible-test looks for a cached copy first (~/.ansible/test/cache/get_pip_<version>.py), so
tools/ansible-test-sanity.sh puts this file there. It does the same job from what is available:
Python's bundled `ensurepip` installs a pip, which then runs the very command ansible-test gave
against PyPI. Like get-pip.py it takes `pip install` arguments without the word `install`, plus
its own `--no-setuptools` / `--no-wheel`, which only mean "do not add these packages".
"""

import ensurepip
import os
import subprocess
import sys

# ensurepip discards pip's configuration (PIP_* variables, config files) in this process's
# environment; the real install below must see the machine's pip configuration again.
environment = dict(os.environ)
ensurepip.bootstrap(upgrade=True, default_pip=True)
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args], env=environment))
