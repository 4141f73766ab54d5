"""Per-camera tracking (Kalman motion, assignment, appearance) and identities across cameras."""
