"""The error the simulator's routes raise: its status, the API's error body and headers.

Its own module so that the model routes (simulator.py) and the Admin API routes
(simulator_admin.py) share it without importing each other.
"""

from __future__ import annotations


class SimulatorError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )
        self.headers = headers or {}

    def body(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }
