"""Small real services the tests instrument with the standard OpenTelemetry packages."""
