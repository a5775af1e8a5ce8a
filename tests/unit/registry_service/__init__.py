"""Registry, config center and Nacos API tests."""
