"""Sans-IO JSON-RPC 2.0: parse frames, encode responses, error classes. Imports no trio."""

from ._codes import ErrorCode as ErrorCode
from ._errors import (
    AlephError as AlephError,
    AuthFailed as AuthFailed,
    AuthRequired as AuthRequired,
    InternalError as InternalError,
    InvalidParams as InvalidParams,
    InvalidRequest as InvalidRequest,
    MethodNotFound as MethodNotFound,
    OperationTimeout as OperationTimeout,
    ParseError as ParseError,
    PermissionDenied as PermissionDenied,
    RateLimited as RateLimited,
    RemoteProtocolError as RemoteProtocolError,
    ResourceNotFound as ResourceNotFound,
    ToolError as ToolError,
    error_from_object as error_from_object,
)
from ._frames import (
    MAX_ID_DIGITS as MAX_ID_DIGITS,
    Dropped as Dropped,
    Id as Id,
    Invalid as Invalid,
    Item as Item,
    Message as Message,
    Notification as Notification,
    Request as Request,
    encode_batch as encode_batch,
    encode_error as encode_error,
    encode_event as encode_event,
    encode_notification as encode_notification,
    encode_result as encode_result,
    parse_message as parse_message,
)
