"""`python -m retraining`: the retraining worker (see `retraining.worker`)."""
import sys

from retraining.worker import main

sys.exit(main())
