"""The GraphQL schema: only what the wandb SDK's user and team administration sends.

Types and fields are named as the wandb SDK's documents name them (``viewer``, ``entity``,
``createUser`` ...), so its documents validate unchanged. Resolvers are in ``resolvers``; each
calls the same domain services (and so the same policy engine) as the REST API.
"""

from __future__ import annotations

from ariadne import make_executable_schema
from graphql import GraphQLSchema

from rolecall.web.graphql import resolvers

TYPE_DEFS = """
"A JSON document, sent as a string."
scalar JSONString
"An ISO 8601 date and time (UTC)."
scalar DateTime

type Query {
  "The caller: a user, or a service account presented like one."
  viewer: User
  "Users of the organization: exact username or email matches first, then substrings."
  users(query: String, first: Int): UserConnection
  "A team or a personal entity, by name."
  entity(name: String!): Entity
  "The organization, by name."
  organization(name: String!): Organization
}

type Mutation {
  createUser(input: CreateUserInput!): CreateUserPayload
  generateApiKey(input: GenerateApiKeyInput!): GenerateApiKeyPayload
  deleteApiKey(input: DeleteApiKeyInput!): DeleteApiKeyPayload
  createTeam(input: CreateTeamInput!): CreateTeamPayload
  createInvite(input: CreateInviteInput!): CreateInvitePayload
  deleteInvite(input: DeleteInviteInput!): DeleteInvitePayload
  createServiceAccount(input: CreateServiceAccountInput!): CreateServiceAccountPayload
}

type User {
  id: ID!
  name: String!
  username: String
  email: String
  "Whether the user is an admin of the organization."
  admin: Boolean
  flags: JSONString
  "The personal entity (for a service account: its team)."
  entity: String
  "When the user was deactivated."
  deletedAt: DateTime
  "The user's API keys: for the user itself and org admins, otherwise null."
  apiKeys: ApiKeyConnection
  teams: EntityConnection
  organizations: [Organization!]!
  "USER or SERVICE."
  accountType: String
}

type UserConnection { edges: [UserEdge!]! }
type UserEdge { node: User }

type ApiKey {
  id: ID!
  "The key's hint in listings; the full secret right after generateApiKey."
  name: String!
  description: String
}

type ApiKeyConnection { edges: [ApiKeyEdge!]! }
type ApiKeyEdge { node: ApiKey }

type Entity {
  id: ID!
  name: String!
  available: Boolean
  photoUrl: String
  readOnly: Boolean
  readOnlyAdmin: Boolean!
  isTeam: Boolean!
  "team, user or organization."
  entityType: String
  privateOnly: Boolean!
  storageBytes: Int!
  codeSavingEnabled: Boolean!
  defaultAccess: String!
  isPaid: Boolean
  limits: JSONString
  "Users and service accounts, in the order they joined."
  members: [Member!]!
  "A team's organization (null for a personal entity)."
  organization: Organization
  "A personal entity's user (null for a team)."
  user: User
}

type EntityConnection { edges: [EntityEdge!]! }
type EntityEdge { node: Entity }

type Member {
  "The user's or service account's id (what deleteInvite takes)."
  id: ID
  admin: Boolean
  pending: Boolean
  email: String
  username: String
  name: String!
  photoUrl: String
  "USER or SERVICE."
  accountType: String
  "A service account's API key, for those who manage the team's service accounts."
  apiKey: String
  role: String
}

type Organization {
  id: ID!
  name: String!
  orgEntity: Entity
}

type Invite {
  id: ID!
  name: String
  email: String
  createdAt: DateTime
  toUser: User
}

input CreateUserInput { email: String!, admin: Boolean }
type CreateUserPayload { user: User }

input GenerateApiKeyInput { description: String }
type GenerateApiKeyPayload { apiKey: ApiKey }

input DeleteApiKeyInput { id: String! }
type DeleteApiKeyPayload { success: Boolean! }

input CreateTeamInput { teamName: String!, teamAdminUserName: String }
type CreateTeamPayload { entity: Entity }

input CreateInviteInput {
  entityName: String!
  email: String
  username: String
  admin: Boolean
}
type CreateInvitePayload { invite: Invite }

input DeleteInviteInput { id: String, entityName: String }
type DeleteInvitePayload { success: Boolean! }

input CreateServiceAccountInput { description: String!, entityName: String! }
type CreateServiceAccountPayload { user: User }
"""


def build_schema() -> GraphQLSchema:
    """The executable schema, resolvers bound."""
    return make_executable_schema(TYPE_DEFS, *resolvers.BINDABLES, convert_names_case=True)
