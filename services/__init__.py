"""The three tierstream services and the small, domain-free kit they share."""
