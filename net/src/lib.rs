//! Event-loop pieces shared by the dsm servers and client: timer wheel, framed connections.
