//! Closed sets of metric label values.
//!
//! Every label of the node's metrics is an enum declared with
//! [`label_set!`], never a free string: a value a client or a peer sends
//! can never become a new time series (each one is kept forever).
//! `label_set!` is a textual macro (`#[macro_use]` on this module, declared
//! first in `lib.rs`), so using it imports nothing.

/// Declares a closed set of label values: the enum, `label()` (the value as
/// exposed), `ALL` (every value, for tests and gauges) and the Prometheus
/// encoding.
macro_rules! label_set {
    ($(#[$doc:meta])* $vis:vis enum $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The label value.
            pub fn label(self) -> &'static str {
                match self {
                    $($name::$variant => $label,)+
                }
            }
        }

        impl prometheus_client::encoding::EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut prometheus_client::encoding::LabelValueEncoder) -> std::fmt::Result {
                std::fmt::Write::write_str(encoder, self.label())
            }
        }
    };
}

#[cfg(test)]
mod tests {
    label_set! {
        /// A test set.
        enum Colour {
            /// Red.
            Red => "red",
            /// Dark blue.
            DarkBlue => "dark_blue",
        }
    }

    #[test]
    fn values_encode_as_their_labels() {
        use prometheus_client::encoding::EncodeLabelSet;
        #[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
        struct Labels {
            colour: Colour,
        }
        let family =
            prometheus_client::metrics::family::Family::<Labels, prometheus_client::metrics::counter::Counter>::default(
            );
        family.get_or_create(&Labels { colour: Colour::DarkBlue }).inc();
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("paint", "Paint", family);
        let mut out = String::new();
        assert!(prometheus_client::encoding::text::encode(&mut out, &registry).is_ok());
        assert!(out.contains("paint_total{colour=\"dark_blue\"} 1"), "{out}");
        assert_eq!(Colour::ALL, &[Colour::Red, Colour::DarkBlue]);
        assert_eq!(Colour::Red.label(), "red");
    }
}
