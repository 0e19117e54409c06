"""Side effects live here: Spark sessions, lake files, and (later) registries and warehouses."""
