"""Domain-free HTTP plumbing: RFC 9457 problems, health and metrics endpoints, body limits."""
