"""The one error type the Serve app's checks raise: an HTTP status and a message the client may read."""

from __future__ import annotations

# OpenAI's error "type" for each status we send, so the official client raises its matching exception class.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "invalid_request_error"}


class RequestError(ValueError):
    """A request the server refuses; `status` is a 4xx code and the message names the field and the problem.

    Raised by our layer in front of the router (`app.Guard`, `app.Ingress`), which answers it in OpenAI's error
    layout; it pickles with both arguments, should it ever cross a Ray boundary.
    """

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message

    def __reduce__(self):  # pickled across Ray with both arguments (the default would pass only the message)
        return (type(self), (self.status, self.message))

    def body(self) -> dict:
        """The JSON body in OpenAI's error layout."""
        return {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "invalid_request_error"),
                          "code": self.status}}
