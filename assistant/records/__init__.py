"""The application database (feedback, question log, admin history) and the gaps report's grouping."""
