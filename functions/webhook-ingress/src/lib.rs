//! webhook-ingress
