"""UniNote application: settings, notes, store, audit, records, dashboard, client, CLI."""
