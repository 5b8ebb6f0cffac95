from minikubelet.cli import main

raise SystemExit(main())
