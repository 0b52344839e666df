from services.console.app import main

raise SystemExit(main())
