"""CLI subcommands, one module each, registered by ``rtstyle.cli``."""
