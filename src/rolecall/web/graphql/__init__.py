"""The GraphQL surface the wandb SDK speaks (``POST /graphql``)."""

from rolecall.web.graphql.endpoint import router

__all__ = ["router"]
