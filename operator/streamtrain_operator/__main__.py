"""`python -m streamtrain_operator` runs the operator."""

from streamtrain_operator.main import main

raise SystemExit(main())
