"""The Faust agents: one thin module per flow. They read messages and hand them to the pipeline."""
