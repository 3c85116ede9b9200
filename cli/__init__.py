"""The ``synod`` command: one subcommand per role, each imported lazily."""
