//! The node-group scheduler and the Fargate (serverless) scheduler, both API clients.
