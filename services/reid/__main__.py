import sys

from services.reid.service import main

sys.exit(main())
