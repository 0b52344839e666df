import sys

from services.evidence.service import main

sys.exit(main())
