import sys

from services.infer.service import main

sys.exit(main())
