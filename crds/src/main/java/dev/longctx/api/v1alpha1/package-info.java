/**
 * The {@code longctx.dev/v1alpha1} API: the {@link dev.longctx.api.v1alpha1.LongContextModel}
 * custom resource. Every field carries a one-line description that becomes the CRD schema's
 * documentation; every field has a default so that no getter returns null, except the two mutually
 * exclusive scaling choices {@code spec.workers.replicas} and {@code spec.autoscaling}, whose
 * presence is the user's choice (see {@link LongContextModelSpec#scalingMode()}).
 */
package dev.longctx.api.v1alpha1;
