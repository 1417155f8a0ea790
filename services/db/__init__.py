"""Domain-free database kit: the async engine and its sessions, and the unit of work that
commits or rolls back one transaction. The repositories of each service build on it."""
