"""The `remora` command line: one module per command group, each a thin shell."""
