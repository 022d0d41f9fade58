"""python -m campaign: the fault campaign's command line (campaign/cli.py)."""

import sys

from campaign.cli import main

sys.exit(main())
