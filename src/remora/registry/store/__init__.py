"""Where the control plane keeps its state: one key-value interface, SQLite or etcd behind it."""
