"""For development, tests and the demo only, never production: a local broker, PostgreSQL and
worker processes (`localrun`), local stand-ins of Maskinporten, ID-porten and Folkeregisteret,
and the demo itself."""
