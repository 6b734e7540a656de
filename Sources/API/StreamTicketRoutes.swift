import Foundation
import Hummingbird
import Logging

/// `POST /v1/stream-tickets`: a ticket for the event streams (``StreamTicket``), for browser clients
/// whose `EventSource` cannot send the token. Any role may ask; the ticket carries the caller's grant.
func addStreamTicketRoutes(_ router: Router<APIRequestContext>, _ api: APIContext) {
    router.post("v1/stream-tickets") { request, context in
        let grant = try await refusingEarly(request, context, api) { try context.require(.read) }
        await BodyReader(request: request, context: context, configuration: api.configuration).discard()
        // A static token's ticket names it (looked up again when used); a JWT's carries its grant,
        // as the middleware found it, until the JWT ends at the latest.
        let ticket = StreamTicket.issue(grant, ends: context.grantEnds, secret: api.configuration.sessionSecret)
        context.logger.info("stream ticket issued", metadata: ["token": .string(grant.name)])
        return try JSONResponse.make(
            [
                "ticket": ticket.value, "expires_at": JobView.timestamp(ticket.expires * 1000),
                "expires_in_seconds": max(0, ticket.expires - Int64(Date().timeIntervalSince1970)),
            ],
            status: .created)
    }
}
