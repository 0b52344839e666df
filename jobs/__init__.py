"""PyFlink jobs. Each keeps its logic in plain classes and a connector-free `build_pipeline(stream)`."""
