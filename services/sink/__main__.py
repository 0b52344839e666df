import sys

from services.sink.service import main

sys.exit(main())
