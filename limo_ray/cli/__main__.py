"""`python -m limo_ray.cli`: the `limo` command."""

import sys

from limo_ray.cli import main

sys.exit(main())
