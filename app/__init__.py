"""UniNote application: settings, notes, store, audit, records, dashboard, client, CLI."""

import encoder  # noqa: E402,F401  (OMP_WAIT_POLICY before torch loads: encoder/__init__.py)
