//! The RTCP the server acts on itself. webrtc-rs ends every incoming RTCP packet inside its
//! interceptor chain unless one marks it for the application (docs/design/sfu-stack.md §3): this
//! interceptor marks a subscriber's keyframe requests (PLI, FIR), which the server relays
//! rate-limited to the publisher ([`crate::forwarder::Forwarder::on_keyframe_request`]), a
//! subscriber's NACKs, answered from the publisher's packet cache
//! ([`crate::forwarder::Forwarder::on_nack`]), and a publisher's sender reports, from which the
//! server writes each subscriber's ([`crate::forwarder::Forwarder::sender_report`]) so that audio
//! and video stay in sync through it, and a subscriber's TWCC feedback, from which the server
//! estimates its bandwidth ([`crate::send_side`]). Receiver reports stay with the stack.
//!
//! It sits in the chain's sender-report slot, in place of webrtc-rs's generator: the reports a
//! subscriber gets must carry the publisher's clock, not the server's.

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtcp::transport_feedbacks::transport_layer_cc::TransportLayerCc;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;
use rtc::sansio::Protocol;
use rtc::shared::error::Error;

#[derive(Default)]
pub struct DeliverRtcp {
    read: VecDeque<TaggedPacket>,
    write: VecDeque<TaggedPacket>,
}

/// Whether `packet` asks for a keyframe.
pub fn asks_for_keyframe(packet: &dyn rtc::rtcp::packet::Packet) -> bool {
    let any = packet.as_any();
    any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
}

/// `packet` as a NACK, if it is one.
pub fn as_nack(packet: &dyn rtc::rtcp::packet::Packet) -> Option<&TransportLayerNack> {
    packet.as_any().downcast_ref::<TransportLayerNack>()
}

/// `packet` as TWCC feedback, if it is.
pub fn as_transport_feedback(packet: &dyn rtc::rtcp::packet::Packet) -> Option<&TransportLayerCc> {
    packet.as_any().downcast_ref::<TransportLayerCc>()
}

/// `packet` as a sender report, if it is one.
pub fn as_sender_report(packet: &dyn rtc::rtcp::packet::Packet) -> Option<&SenderReport> {
    packet.as_any().downcast_ref::<SenderReport>()
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for DeliverRtcp {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = Error;
    type Time = Instant;

    fn handle_read(&mut self, mut message: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &message.message.packet
            && packets.iter().any(|packet| {
                let packet = packet.as_ref();
                asks_for_keyframe(packet)
                    || as_nack(packet).is_some()
                    || as_sender_report(packet).is_some()
                    || as_transport_feedback(packet).is_some()
            })
        {
            message.message.add(Attribute::DeliverToApplication);
        }
        self.read.push_back(message);
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read.pop_front()
    }

    fn handle_write(&mut self, message: TaggedPacket) -> Result<(), Self::Error> {
        self.write.push_back(message);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write.pop_front()
    }

    fn handle_timeout(&mut self, _now: Instant) -> Result<(), Self::Error> {
        Ok(())
    }

    fn poll_timeout(&mut self) -> Option<Self::Time> {
        None
    }
}

impl Interceptor for DeliverRtcp {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}
